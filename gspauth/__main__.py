import sys

from gspauth.cli import main

sys.exit(main())
