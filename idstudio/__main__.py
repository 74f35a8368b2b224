from idstudio.cli import main

raise SystemExit(main())
