from depthxai.cli import main

raise SystemExit(main())
