"""RabbitMQ: the only package that imports pika. Connection parameters, message properties,
the asynchronous publisher, blocking delivery of spooled records, the consumer's connection
and a typed diagnosis of connect failures (callers write the sentences)."""
