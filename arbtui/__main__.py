from arbtui.cli import main

raise SystemExit(main())
