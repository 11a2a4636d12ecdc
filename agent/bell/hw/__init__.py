"""Bell hardware, one module per device: GPIO (gpiod), RS-485 Modbus RTU, simulator.

Each device module holds both directions (inputs and relay outputs) of its hardware; the
interfaces they implement are :mod:`agent.bell.inputs` and :mod:`agent.bell.outputs`.
"""
