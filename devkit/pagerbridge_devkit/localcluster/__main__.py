import sys

from pagerbridge_devkit.localcluster._cli import main

sys.exit(main())
