"""Trust services as HTTP services: the CA's OCSP responder and the time-stamping authority."""
