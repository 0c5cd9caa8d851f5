// CryptoProvider backed by OpenSSL's libcrypto: EVP digests, HMAC, PKCS5_PBKDF2_HMAC and RAND_bytes.
// ProxyCore's auth logic calls these through the protocol; this is its only implementation.
import COpenSSL
import ProxyCore

/// SHA-256, HMAC-SHA-256, PBKDF2-HMAC-SHA-256, MD5 and secure random bytes from libcrypto.
public struct OpenSSLCrypto: CryptoProvider {
    public init() {}

    public func sha256(_ data: [UInt8]) -> [UInt8] {
        digest(data, EVP_sha256())
    }

    public func md5(_ data: [UInt8]) -> [UInt8] {
        digest(data, EVP_md5())
    }

    public func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = Self.withNonNullPointer(key) { keyPointer in
            Self.withNonNullPointer(data) { dataPointer in
                out.withUnsafeMutableBufferPointer { outBuffer in
                    HMAC(EVP_sha256(), keyPointer, Int32(key.count), dataPointer, data.count,
                         outBuffer.baseAddress, &length) != nil
                }
            }
        }
        precondition(ok && length == 32, "OpenSSL HMAC-SHA-256 failed")
        return Array(out.prefix(Int(length)))
    }

    public func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        precondition(iterations > 0 && iterations <= Int(Int32.max), "PBKDF2 iteration count out of range")
        var out = [UInt8](repeating: 0, count: 32)
        let status = Self.withNonNullPointer(password) { passwordPointer in
            Self.withNonNullPointer(salt) { saltPointer in
                out.withUnsafeMutableBufferPointer { outBuffer in
                    passwordPointer.withMemoryRebound(to: CChar.self, capacity: max(password.count, 1)) { passwordChars in
                        PKCS5_PBKDF2_HMAC(passwordChars, Int32(password.count), saltPointer, Int32(salt.count),
                                          Int32(iterations), EVP_sha256(), 32, outBuffer.baseAddress)
                    }
                }
            }
        }
        precondition(status == 1, "OpenSSL PKCS5_PBKDF2_HMAC failed")
        return out
    }

    /// Aborts if the generator fails: a predictable nonce or salt is worse than a crash.
    public func randomBytes(_ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: count)
        let status = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(status == 1, "OpenSSL RAND_bytes failed")
        return out
    }

    private func digest(_ data: [UInt8], _ type: OpaquePointer?) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let status = Self.withNonNullPointer(data) { dataPointer in
            out.withUnsafeMutableBufferPointer { outBuffer in
                EVP_Digest(dataPointer, data.count, outBuffer.baseAddress, &length, type, nil)
            }
        }
        precondition(status == 1, "OpenSSL EVP_Digest failed")
        return Array(out.prefix(Int(length)))
    }

    /// Calls `body` with a pointer to the bytes that is never NULL, even for an empty array:
    /// some libcrypto calls treat a NULL key or input specially.
    private static func withNonNullPointer<R>(_ bytes: [UInt8], _ body: (UnsafePointer<UInt8>) -> R) -> R {
        if bytes.isEmpty {
            var dummy: UInt8 = 0
            return withUnsafePointer(to: &dummy) { body($0) }
        }
        return bytes.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
