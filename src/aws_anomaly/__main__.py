import sys

from aws_anomaly.cli import main

sys.exit(main())
