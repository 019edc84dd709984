"""What the tests and benchmarks drive the product with (load, a webhook receiver, an
SFTP server): not part of the ops package."""
