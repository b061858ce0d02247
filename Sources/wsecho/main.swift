// wsecho: echo server and echo client for interop testing (see DESIGN.md for the contract).
print("wsecho: not implemented yet")
