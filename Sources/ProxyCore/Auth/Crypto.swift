// The crypto primitives authentication needs, as a protocol: ProxyCore imports no C,
// so ProxyIO supplies an OpenSSL-backed implementation (OpenSSLCrypto).

/// Hashes, MACs, key derivation and randomness used by MD5 and SCRAM-SHA-256 authentication.
public protocol CryptoProvider: Sendable {
    /// SHA-256 digest (32 bytes).
    func sha256(_ data: [UInt8]) -> [UInt8]
    /// HMAC-SHA-256 (32 bytes).
    func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8]
    /// PBKDF2 with HMAC-SHA-256, producing 32 bytes (SCRAM's `Hi()`).
    func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8]
    /// MD5 digest (16 bytes); only for Postgres's legacy md5 password scheme.
    func md5(_ data: [UInt8]) -> [UInt8]
    /// `count` bytes from a cryptographically secure generator.
    func randomBytes(_ count: Int) -> [UInt8]
}

/// Byte helpers shared by the auth code.
enum AuthBytes {
    /// Compares two byte strings in time that depends only on their lengths.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// Byte-wise XOR of two equal-length strings.
    static func xor(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        precondition(a.count == b.count, "xor of unequal lengths")
        return (0..<a.count).map { a[$0] ^ b[$0] }
    }

    /// Lowercase hex, as Postgres writes md5 digests.
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
