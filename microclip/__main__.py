from microclip.cli import main

raise SystemExit(main())
