"""An RS-485 Modbus RTU I/O module: frames and client (``rtu``), the shared serial line
(``line``), discrete inputs as the bell input (``inputs``) and coils as its outputs (``coils``).
"""
