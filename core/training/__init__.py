"""Training methods, one module per family: full/head/BitFit/LoRA (finetune), bottleneck adapters, mean-pooled heads,
SetFit and frozen-embedding classifiers, prompt learning on the decoder, continual learning."""
