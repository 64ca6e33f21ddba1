import sys

from jaxrl.cli import main

sys.exit(main())
