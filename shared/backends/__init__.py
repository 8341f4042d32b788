"""Build backends: where the untrusted AI build, the image build and the preview actually run."""
