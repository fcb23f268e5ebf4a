"""waybillguard: the customer-data vault of a courier network."""

__version__ = "0.1.0"
