from sagemaker_cv.tools.weights import main

raise SystemExit(main())
