from nerve.cli import main

raise SystemExit(main())
