"""AWS side: EMR deployment resources, cluster plan, bucket setup."""
