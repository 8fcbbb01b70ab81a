from pagerbridge.cli import main

raise SystemExit(main())
