import CWebSocket
print("wsbench: isa \(String(cString: cws_isa_name(cws_isa_active())))")
