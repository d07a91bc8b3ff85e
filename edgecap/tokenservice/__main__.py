import sys

from edgecap.tokenservice.cli import main

sys.exit(main())
