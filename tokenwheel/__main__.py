from tokenwheel.cli import main

raise SystemExit(main())
