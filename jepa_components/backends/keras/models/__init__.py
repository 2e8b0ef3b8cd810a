"""Keras models: the ViT encoder, the predictor and the JEPA methods built on them."""
