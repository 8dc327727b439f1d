"""Files in and out: images, orbax checkpoints, the torch-free checkpoint reader, atomic writes."""
