from ivr_engine.cli import main

raise SystemExit(main())
