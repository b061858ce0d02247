import CWebSocket
