// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as Postgres speaks it: secret derivation, message
// parsing, and the failure enum. The two exchanges live in SCRAMServerExchange.swift and
// SCRAMClientExchange.swift.

/// Why an authentication exchange failed. The strings are fixed so logs and tests can match them.
public enum AuthFailure: Error, Equatable, Sendable {
    /// The peer sent a message that breaks the protocol.
    case malformed(String)
    /// The client's proof did not match the secret.
    case wrongPassword
    /// The peer asked for something Switchyard does not do (channel binding, authzid, extensions).
    case unsupported(String)
}

/// SCRAM-SHA-256 constants and key derivation.
///
/// Password preparation: Postgres runs the password through SASLprep (RFC 4013) and, when
/// that fails, uses the raw bytes. For ASCII passwords SASLprep is the identity, so this code
/// matches Postgres exactly. For non-ASCII passwords Switchyard uses the raw UTF-8 bytes
/// without SASLprep: this still matches Postgres when the password is already in NFKC form and
/// contains no characters SASLprep maps (non-ASCII spaces, soft hyphen, zero-width characters),
/// which covers ordinary precomposed letters such as "é"; passwords with compatibility forms
/// (fullwidth letters, ligatures) will not match a secret Postgres made. Store a SCRAM secret
/// in auth_file for such users.
public enum SCRAM {
    /// The SASL mechanism name advertised in AuthenticationSASL.
    public static let mechanism = "SCRAM-SHA-256"
    /// Postgres's default `scram_iterations`.
    public static let defaultIterations = 4096
    /// Postgres's salt length for new secrets.
    public static let defaultSaltLength = 16
    /// Random bytes in a nonce before base64 (Postgres's SCRAM_RAW_NONCE_LEN).
    static let rawNonceLength = 18

    /// Builds the Postgres secret for a plaintext password with the given salt and iteration count.
    public static func makeSecret(password: String, salt: [UInt8], iterations: Int, crypto: CryptoProvider) -> SCRAMSecret {
        let keys = deriveKeys(password: password, salt: salt, iterations: iterations, crypto: crypto)
        return SCRAMSecret(iterations: iterations, salt: salt,
                           storedKey: crypto.sha256(keys.clientKey), serverKey: keys.serverKey)
    }

    /// Builds the Postgres secret for a plaintext password with a random 16-byte salt and 4096 iterations.
    public static func makeSecret(password: String, crypto: CryptoProvider) -> SCRAMSecret {
        makeSecret(password: password, salt: crypto.randomBytes(defaultSaltLength),
                   iterations: defaultIterations, crypto: crypto)
    }

    /// `ClientKey = HMAC(SaltedPassword, "Client Key")`, `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    static func deriveKeys(password: String, salt: [UInt8], iterations: Int, crypto: CryptoProvider)
        -> (clientKey: [UInt8], serverKey: [UInt8]) {
        let salted = crypto.pbkdf2SHA256(password: prepare(password), salt: salt, iterations: iterations)
        return (crypto.hmacSHA256(key: salted, data: Array("Client Key".utf8)),
                crypto.hmacSHA256(key: salted, data: Array("Server Key".utf8)))
    }

    /// The password bytes fed to PBKDF2; see the type's documentation for the SASLprep limit.
    static func prepare(_ password: String) -> [UInt8] {
        Array(password.utf8)
    }

    /// A fresh nonce: base64 of 18 random bytes, as Postgres and libpq make them.
    static func makeNonce(_ crypto: CryptoProvider) -> [UInt8] {
        AuthBase64.encode(crypto.randomBytes(rawNonceLength))
    }

    /// `ClientSignature = HMAC(StoredKey, AuthMessage)`, `ClientProof = ClientKey XOR ClientSignature`.
    static func clientProof(clientKey: [UInt8], authMessage: [UInt8], crypto: CryptoProvider) -> [UInt8] {
        let signature = crypto.hmacSHA256(key: crypto.sha256(clientKey), data: authMessage)
        return AuthBytes.xor(clientKey, signature)
    }
}

/// One `name=value` attribute of a SCRAM message.
struct SCRAMAttribute {
    let name: UInt8
    let value: ArraySlice<UInt8>
}

/// Splitting and checking SCRAM message text.
enum SCRAMMessage {
    static let comma = UInt8(ascii: ",")

    /// Splits `a=...,b=...` into attributes; nil if any part is not a letter followed by `=`.
    static func attributes(_ bytes: ArraySlice<UInt8>) -> [SCRAMAttribute]? {
        var result: [SCRAMAttribute] = []
        for part in bytes.split(separator: comma, omittingEmptySubsequences: false) {
            guard part.count >= 2, isLetter(part[part.startIndex]),
                  part[part.startIndex + 1] == UInt8(ascii: "=") else { return nil }
            result.append(SCRAMAttribute(name: part[part.startIndex], value: part.dropFirst(2)))
        }
        return result
    }

    static func isLetter(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
    }

    /// RFC 5802 `printable`: %x21-2B / %x2D-7E, i.e. visible ASCII except the comma.
    static func isPrintableNonce<C: Collection>(_ value: C) -> Bool where C.Element == UInt8 {
        !value.isEmpty && value.allSatisfy { $0 >= 0x21 && $0 <= 0x7E && $0 != comma }
    }

    /// A positive decimal integer without sign or leading garbage.
    static func positiveInt(_ value: ArraySlice<UInt8>) -> Int? {
        guard !value.isEmpty, value.count <= 10,
              value.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let n = Int(String(decoding: value, as: UTF8.self)), n > 0 else { return nil }
        return n
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
}
