"""The TorchServe handler and the request protocol it shares with the KServe predictor: exactly what srcnn.mar ships
besides srcnn/ and the weights."""
