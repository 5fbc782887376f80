import sys

from kubernaut.sandbox.cli import main

sys.exit(main())
