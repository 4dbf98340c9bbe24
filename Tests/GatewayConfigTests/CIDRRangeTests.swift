@testable import GatewayConfig
import Testing

@Suite("CIDR ranges")
struct CIDRRangeTests {
    @Test("IPv4 ranges contain exactly their addresses")
    func ipv4Containment() throws {
        let range = try CIDRRange("10.1.0.0/16")
        #expect(range.family == .ipv4)
        #expect(range.prefixLength == 16)
        #expect(range.contains("10.1.0.0"))
        #expect(range.contains("10.1.255.255"))
        #expect(range.contains("10.1.77.3"))
        #expect(!range.contains("10.2.0.0"))
        #expect(!range.contains("10.0.255.255"))
        #expect(!range.contains("not an address"))
        #expect(!range.contains(""))
        #expect(!range.contains("10.1.0.1/32"))
        #expect(!range.contains("::1"))

        let host = try CIDRRange("192.168.1.7/32")
        #expect(host.contains("192.168.1.7"))
        #expect(!host.contains("192.168.1.6"))

        let odd = try CIDRRange("172.16.0.0/12")
        #expect(odd.contains("172.31.255.255"))
        #expect(!odd.contains("172.32.0.0"))

        let everything = try CIDRRange("0.0.0.0/0")
        #expect(everything.contains("255.255.255.255"))
        #expect(everything.contains("0.0.0.0"))
    }

    @Test("IPv6 ranges contain exactly their addresses")
    func ipv6Containment() throws {
        let range = try CIDRRange("2001:db8::/32")
        #expect(range.family == .ipv6)
        #expect(range.contains("2001:db8::1"))
        #expect(range.contains("2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff"))
        #expect(!range.contains("2001:db9::"))
        #expect(!range.contains("10.0.0.1"))

        let loopback = try CIDRRange("::1/128")
        #expect(loopback.contains("::1"))
        #expect(loopback.contains("0:0:0:0:0:0:0:1"))
        #expect(!loopback.contains("::2"))

        let uniqueLocal = try CIDRRange("fd00::/8")
        #expect(uniqueLocal.contains("fd12:3456::1"))
        #expect(uniqueLocal.contains("fe80::1%eth0") == false)

        let linkLocal = try CIDRRange("fe80::/10")
        #expect(linkLocal.contains("fe80::1%eth0"))
        #expect(linkLocal.contains("febf::1"))
        #expect(!linkLocal.contains("fec0::1"))

        let nibble = try CIDRRange("2001:db8:abcd:12::/63")
        #expect(nibble.contains("2001:db8:abcd:13::1"))
        #expect(!nibble.contains("2001:db8:abcd:14::1"))
    }

    @Test("A set of ranges contains an address when one of them does; zones and garbage are handled")
    func anyOfASet() throws {
        let ranges = [try CIDRRange("10.0.0.0/8"), try CIDRRange("fd00::/8")]
        #expect(CIDRRange.any(of: ranges, contains: "10.2.3.4"))
        #expect(CIDRRange.any(of: ranges, contains: "fd12::1%eth0"))
        #expect(CIDRRange.any(of: ranges, contains: "::ffff:10.0.0.1"))
        #expect(!CIDRRange.any(of: ranges, contains: "11.0.0.1"))
        #expect(!CIDRRange.any(of: ranges, contains: "fe80::1%eth0"))
        #expect(!CIDRRange.any(of: ranges, contains: "not-an-address"))
        #expect(!CIDRRange.any(of: ranges, contains: ""))
        #expect(!CIDRRange.any(of: [], contains: "10.2.3.4"))
    }

    @Test("IPv4-mapped IPv6 peers match IPv4 ranges and the other way round")
    func mappedAddresses() throws {
        let ipv4 = try CIDRRange("127.0.0.1/32")
        #expect(ipv4.contains("::ffff:127.0.0.1"))
        #expect(!ipv4.contains("::ffff:127.0.0.2"))
        #expect(!ipv4.contains("::127.0.0.1"))
        let mapped = try CIDRRange("::ffff:10.0.0.0/104")
        #expect(mapped.contains("10.20.30.40"))
        #expect(!mapped.contains("11.0.0.1"))
    }

    @Test("A bare address is a single-host range")
    func bareAddress() throws {
        #expect(try CIDRRange("10.0.0.1").description == "10.0.0.1/32")
        #expect(try CIDRRange("::1").description == "::1/128")
    }

    @Test("Descriptions are canonical")
    func descriptions() throws {
        #expect(try CIDRRange("2001:0db8:0000::/48").description == "2001:db8::/48")
        #expect(try CIDRRange("0.0.0.0/0").description == "0.0.0.0/0")
    }

    @Test("Bad ranges are refused with a reason", arguments: [
        ("10.0.0.1/33", "prefix length"),
        ("10.0.0.0/-1", "prefix length"),
        ("10.0.0.0/08", "prefix length"),
        ("10.0.0.0/", "prefix length"),
        ("10.0.0.0/ 8", "prefix length"),
        ("::/129", "prefix length"),
        ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
        ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
        ("10.0.0/8", "not an IPv4 or IPv6 address"),
        ("010.0.0.0/8", "not an IPv4 or IPv6 address"),
        ("256.0.0.0/8", "not an IPv4 or IPv6 address"),
        ("localhost", "not an IPv4 or IPv6 address"),
        (" 10.0.0.0/8", "not an IPv4 or IPv6 address"),
        ("fe80::1%eth0/128", "not an IPv4 or IPv6 address"),
        ("2001:db8:::/48", "not an IPv4 or IPv6 address"),
        ("", "not an IPv4 or IPv6 address"),
        ("/8", "not an IPv4 or IPv6 address"),
        ("0/0", "not an IPv4 or IPv6 address"),
    ])
    func badRanges(text: String, reasonFragment: String) {
        do {
            let range = try CIDRRange(text)
            Issue.record("\(text) parsed as \(range)")
        } catch {
            #expect(error.reason.contains(reasonFragment), "\(text): \(error.reason)")
        }
    }

    @Test("Trusted proxies of a server")
    func trustedProxies() throws {
        let server = ServerSettings(trustedProxies: [try CIDRRange("10.0.0.0/8"), try CIDRRange("::1/128")])
        #expect(server.isTrustedProxy("10.9.9.9"))
        #expect(server.isTrustedProxy("::1"))
        #expect(!server.isTrustedProxy("192.168.0.1"))
        #expect(ServerSettings().isTrustedProxy("127.0.0.1"))
        #expect(ServerSettings().isTrustedProxy("::1"))
        #expect(!ServerSettings().isTrustedProxy("127.0.0.2"))
    }
}
