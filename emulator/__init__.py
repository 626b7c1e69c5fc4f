"""The local emulated AWS: moto with its Step Functions interpreter, a router, a Lambda host. See control.py."""
