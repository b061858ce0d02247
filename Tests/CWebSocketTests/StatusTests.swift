import CWebSocket
import Testing

@Suite struct StatusTests {
    @Test func closeCodesForStatuses() {
        #expect(cws_status_close_code(CWS_OK) == 1000)
        #expect(cws_status_close_code(CWS_ERR_RESERVED_BITS) == 1002)
        #expect(cws_status_close_code(CWS_ERR_INVALID_UTF8) == 1007)
        #expect(cws_status_close_code(CWS_ERR_MESSAGE_TOO_BIG) == 1009)
        #expect(cws_status_close_code(CWS_ERR_TOO_MANY_FRAGMENTS) == 1009)
        #expect(cws_status_close_code(CWS_ERR_BUFFER_TOO_SMALL) == 1011)
    }

    @Test func activeISAIsSupported() {
        #expect(cws_isa_supported(cws_isa_active()))
        #expect(cws_isa_supported(CWS_ISA_SCALAR))
    }
}
