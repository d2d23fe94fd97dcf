"""The SageMaker side of the container: /opt/ml paths, config files, content types, errors, logging.
No framework imports here."""
