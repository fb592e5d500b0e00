from vrooms.cli import main

raise SystemExit(main())
