"""TorchServe side of the service: the handler (packed into srcnn.mar) and the server controls."""
