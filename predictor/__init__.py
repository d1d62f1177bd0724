"""The SRCNN service as a KServe predictor of its own, on KServe's maintained Python `ModelServer`, beside the
TorchServe archive: `python -m predictor` serves REST v1 and v2 and gRPC v2 (predictor/__main__.py), the model is
`predictor.model.SRCNNModel`. It runs the same request pipeline as TorchServe's handler (handler/pipeline.py) and
imports nothing of TorchServe.
"""
