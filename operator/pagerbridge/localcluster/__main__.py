import sys

from pagerbridge.localcluster._cli import main

sys.exit(main())
