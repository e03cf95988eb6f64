"""The only package that imports TensorFlow/Keras: data, models, fit, callbacks, weight
statistics, the compiled-model cache, checkpoints."""
