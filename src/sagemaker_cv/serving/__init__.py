"""SageMaker real-time hosting and batch transform: HTTP only. What a model answers is its
algorithm's (`Algorithm.predictor`); here are the server, its workers, content negotiation, size
limits, status codes and the SIGTERM drain."""
