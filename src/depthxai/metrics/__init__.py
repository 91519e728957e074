"""Depth-accuracy metrics (the official BTS/PixelFormer evaluation): below the models, which report them after
training and prediction, and below the evaluation and statistics stages, which compare with them."""
