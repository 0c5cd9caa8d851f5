// Postgres's legacy md5 password scheme (AuthenticationMD5Password): computing a client's
// response for a server, and checking a client's response against an auth_file secret.

/// The md5 challenge-response: `"md5" + hex(md5(hex(md5(password + user)) + salt))`.
public enum MD5Password {
    /// What a client sends for AuthenticationMD5Password with the 4-byte `salt`.
    /// Works from a `.plain` password or a stored `.md5` secret; nil for `.scram`, which cannot produce one.
    public static func response(user: String, secret: Secret, salt: [UInt8], crypto: CryptoProvider) -> String? {
        let inner: [UInt8]
        switch secret {
        case let .plain(password):
            inner = Array(AuthBytes.hex(crypto.md5(Array(password.utf8) + Array(user.utf8))).utf8)
        case let .md5(stored):
            guard Secret.isMD5(stored) else { return nil }
            inner = Array(stored.utf8.dropFirst(3)).map(asciiLowercased)
        case .scram:
            return nil
        }
        return "md5" + AuthBytes.hex(crypto.md5(inner + salt))
    }

    /// Checks a client's response against a `.plain` or `.md5` secret in constant time
    /// (for equal lengths). False for `.scram` secrets and for any malformed input.
    public static func verify(user: String, secret: Secret, salt: [UInt8], response: String, crypto: CryptoProvider) -> Bool {
        guard let expected = self.response(user: user, secret: secret, salt: salt, crypto: crypto) else { return false }
        return AuthBytes.constantTimeEquals(Array(expected.utf8), Array(response.utf8))
    }

    private static func asciiLowercased(_ b: UInt8) -> UInt8 {
        (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z")) ? b + 32 : b
    }
}
