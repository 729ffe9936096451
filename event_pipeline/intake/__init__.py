"""Where archives come from: the key rule, the drop folder, S3, many archives at once."""
