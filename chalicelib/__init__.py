"""chute: serverless background processing for large uploads with per-file progress."""
