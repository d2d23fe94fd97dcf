from sagemaker_cv.cli import main

raise SystemExit(main())
