// OpenSSL contexts for both sides (clients of the proxy, and the proxy as a client of servers), the SSL objects
// made from them, and what a handshake leaves behind: the peer's certificate name, version, cipher, errors.
import CLibevent
import COpenSSL
import ProxyCore

/// A certificate, key or CA file that does not load, or a setting OpenSSL refuses.
struct TLSError: Error, CustomStringConvertible {
    let description: String
}

/// An encrypted key would make OpenSSL prompt on the terminal: refuse it instead (as Postgres does on reload).
private let noPassphrase: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = { _, _, _, _ in 0 }

/// One SSL_CTX. Ownership: this object holds one reference, released in deinit; each SSL made from it holds one
/// of its own (SSL_new), so a context RELOAD replaced stays valid for the sessions that still use it.
final class TLSContext {
    let ctx: OpaquePointer
    /// Subject, serial and expiry of the certificate shown to peers, for the log.
    private(set) var certificateSummary = ""

    private init(method: OpaquePointer?) throws {
        guard let ctx = SSL_CTX_new(method) else { throw TLSError(description: "SSL_CTX_new failed: \(TLS.lastError())") }
        self.ctx = ctx
    }

    deinit { SSL_CTX_free(ctx) }

    /// The context clients handshake with: the proxy's certificate and key, the client_tls_* versions and ciphers;
    /// with client_tls_ca_file, clients are asked for a certificate, and one that does not verify fails the handshake.
    static func forClients(_ settings: ProxySettings) throws -> TLSContext {
        let c = try TLSContext(method: TLS_server_method())
        try c.common(protocols: settings.clientTLSProtocols, ciphers: settings.clientTLSCiphers, what: "client_tls")
        guard let cert = settings.clientTLSCertFile, let key = settings.clientTLSKeyFile else {
            throw TLSError(description: "client_tls_cert_file and client_tls_key_file are required for client TLS")
        }
        try c.loadCertificate(cert, key: key, what: "client_tls")
        _ = SSL_CTX_set_options(c.ctx, sy_SSL_OP_CIPHER_SERVER_PREFERENCE())
        // Postgres's choices: no session cache or tickets (libpq never resumes), so no per-handshake ticket work.
        _ = sy_SSL_CTX_set_session_cache_mode(c.ctx, Int(SSL_SESS_CACHE_OFF))
        _ = SSL_CTX_set_num_tickets(c.ctx, 0)
        let context = "switchyard"
        _ = SSL_CTX_set_session_id_context(c.ctx, context, UInt32(context.utf8.count))
        if let ca = settings.clientTLSCAFile {
            guard SSL_CTX_load_verify_locations(c.ctx, ca, nil) == 1 else {
                throw TLSError(description: "cannot load client_tls_ca_file \(ca): \(TLS.lastError())")
            }
            guard let names = SSL_load_client_CA_file(ca) else {
                throw TLSError(description: "no CA certificate in client_tls_ca_file \(ca): \(TLS.lastError())")
            }
            SSL_CTX_set_client_CA_list(c.ctx, names)
            // Ask for a certificate; whether one is required is the login state machine's decision (28000).
            SSL_CTX_set_verify(c.ctx, SSL_VERIFY_PEER, nil)
        }
        // SSL_get_error trusts the thread's error queue: nothing may be left in it for the first handshake.
        ERR_clear_error()
        return c
    }

    /// The context for connections to servers with `settings`: versions, ciphers, the CA to verify them with (the
    /// system's trust store when unset) and an optional client certificate. Verification itself is set per SSL.
    static func forServers(_ settings: ServerTLSSettings) throws -> TLSContext {
        let c = try TLSContext(method: TLS_client_method())
        try c.common(protocols: settings.protocols, ciphers: settings.ciphers, what: "server_tls")
        if let cert = settings.certFile, let key = settings.keyFile {
            try c.loadCertificate(cert, key: key, what: "server_tls")
        }
        if let ca = settings.caFile {
            guard SSL_CTX_load_verify_locations(c.ctx, ca, nil) == 1 else {
                throw TLSError(description: "cannot load server_tls_ca_file \(ca): \(TLS.lastError())")
            }
        } else {
            _ = SSL_CTX_set_default_verify_paths(c.ctx)
        }
        ERR_clear_error()
        return c
    }

    /// Versions, ciphers, options and modes both sides share.
    private func common(protocols: TLSProtocols, ciphers: String, what: String) throws {
        SSL_CTX_set_default_passwd_cb(ctx, noPassphrase)
        _ = SSL_CTX_set_options(ctx, sy_SSL_OP_NO_COMPRESSION() | sy_SSL_OP_NO_RENEGOTIATION() | sy_SSL_OP_NO_TICKET())
        // libevent may retry a write from a moved buffer; idle connections give their read/write buffers back.
        _ = sy_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))
        guard sy_SSL_CTX_set_min_proto_version(ctx, TLS.openSSLVersion(protocols.lowest)) == 1,
              sy_SSL_CTX_set_max_proto_version(ctx, TLS.openSSLVersion(protocols.highest)) == 1 else {
            throw TLSError(description: "\(what)_protocols: OpenSSL refused the range: \(TLS.lastError())")
        }
        guard ciphers.lowercased() != "default" else { return }
        let items = ciphers.split(separator: ":")
        let suites = items.filter { $0.hasPrefix("TLS_") }.joined(separator: ":")
        let legacy = items.filter { !$0.hasPrefix("TLS_") }.joined(separator: ":")
        if !suites.isEmpty, SSL_CTX_set_ciphersuites(ctx, suites) != 1 {
            throw TLSError(description: "\(what)_ciphers: no usable TLS 1.3 suite in \"\(suites)\": \(TLS.lastError())")
        }
        if !legacy.isEmpty, SSL_CTX_set_cipher_list(ctx, legacy) != 1 {
            throw TLSError(description: "\(what)_ciphers: no usable cipher in \"\(legacy)\": \(TLS.lastError())")
        }
    }

    /// The key goes first: a certificate loaded after a key that does not match it drops the key, and the check
    /// below then says which files disagree.
    private func loadCertificate(_ cert: String, key: String, what: String) throws {
        guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError(description: "cannot load \(what)_key_file \(key): \(TLS.lastError())")
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 else {
            throw TLSError(description: "cannot load \(what)_cert_file \(cert): \(TLS.lastError())")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError(description: "\(what)_key_file \(key) does not match \(what)_cert_file \(cert): \(TLS.lastError())")
        }
        if let x509 = SSL_CTX_get0_certificate(ctx) { certificateSummary = TLS.summary(x509) }
    }

    /// A server-side SSL for one client connection.
    func makeServerSSL() -> OpaquePointer? { SSL_new(ctx) }

    /// A client-side SSL for one connection to `host`: the chain is verified for verify-ca and verify-full, and the
    /// host name (or IP address) for verify-full; SNI carries the host name.
    func makeClientSSL(mode: ServerTLSMode, host: String) -> OpaquePointer? {
        guard let ssl = SSL_new(ctx) else { return nil }
        SSL_set_verify(ssl, mode.verifiesCertificate ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        let isAddress = TLS.isIPAddress(host)
        if mode.verifiesHostName {
            let ok = isAddress ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) : SSL_set1_host(ssl, host)
            guard ok == 1 else {
                SSL_free(ssl)
                ERR_clear_error()
                return nil
            }
        }
        if !isAddress { _ = sy_SSL_set_tlsext_host_name(ssl, host) }
        ERR_clear_error()
        return ssl
    }
}

/// How the proxy reaches one backend over TLS: the context, the mode, and the host name verify-full checks.
struct ServerTLSSetup {
    /// nil when the context could not be built: the connection fails rather than go unencrypted.
    let context: TLSContext?
    let mode: ServerTLSMode
    let host: String
}

/// Helpers over an established or failed session.
enum TLS {
    static func openSSLVersion(_ v: TLSVersion) -> Int32 {
        switch v {
        case .tls1_0: return TLS1_VERSION
        case .tls1_1: return TLS1_1_VERSION
        case .tls1_2: return TLS1_2_VERSION
        case .tls1_3: return TLS1_3_VERSION
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, host, &buffer) == 1 || inet_pton(AF_INET6, host, &buffer) == 1
    }

    /// The oldest queued OpenSSL error's reason (the queue is emptied).
    static func lastError() -> String {
        var reasons: [String] = []
        while case let code = ERR_get_error(), code != 0 { reasons.append(describe(code)) }
        return reasons.first ?? "unknown OpenSSL error"
    }

    static func describe(_ code: UInt) -> String {
        if let reason = ERR_reason_error_string(code) { return String(cString: reason) }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(cString: buffer)
    }

    /// Why the handshake on `bev` failed: OpenSSL's reason, plus the certificate verification error if there is one.
    static func handshakeError(_ bev: OpaquePointer) -> String {
        var reasons: [String] = []
        while case let code = bufferevent_get_openssl_error(bev), code != 0 {
            // libevent also queues SSL_get_error's own code (1, SSL_ERROR_SSL), which is no OpenSSL error.
            if ERR_reason_error_string(code) != nil { reasons.append(describe(code)) }
        }
        if let ssl = bufferevent_openssl_get_ssl(bev) {
            let result = SSL_get_verify_result(ssl)
            if result != X509_V_OK, let text = X509_verify_cert_error_string(result) { reasons.append(String(cString: text)) }
        }
        ERR_clear_error()
        return reasons.isEmpty ? "connection closed during the handshake" : reasons.joined(separator: ": ")
    }

    /// The client's certificate (verified by the handshake) and its CommonName.
    static func peer(of ssl: OpaquePointer) -> TLSPeer {
        guard let cert = SSL_get0_peer_certificate(ssl) else { return TLSPeer(hasCertificate: false, commonName: nil) }
        return TLSPeer(hasCertificate: true, commonName: commonName(cert))
    }

    /// The subject's only CommonName as UTF-8; nil when there is none, more than one, or it holds a NUL byte.
    static func commonName(_ cert: OpaquePointer) -> String? {
        guard let name = X509_get_subject_name(cert) else { return nil }
        let index = X509_NAME_get_index_by_NID(name, NID_commonName, -1)
        guard index >= 0, X509_NAME_get_index_by_NID(name, NID_commonName, index) < 0,
              let entry = X509_NAME_get_entry(name, index), let data = X509_NAME_ENTRY_get_data(entry) else { return nil }
        var out: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&out, data)
        guard length >= 0, let out else { return nil }
        defer { sy_OPENSSL_free(out) }
        let bytes = Array(UnsafeBufferPointer(start: out, count: Int(length)))
        guard !bytes.contains(0) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// "TLSv1.3/TLS_AES_256_GCM_SHA384" (PgBouncer's form), for logs and the tls column of SHOW CLIENTS / SERVERS.
    static func sessionDescription(_ ssl: OpaquePointer) -> String {
        let version = SSL_get_version(ssl).map { String(cString: $0) } ?? "?"
        let cipher = SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? "?"
        return version + "/" + cipher
    }

    /// "subject=CN=proxy serial=1A2B notAfter=Jan  1 00:00:00 2030 GMT".
    static func summary(_ x509: OpaquePointer) -> String {
        var parts: [String] = []
        if let name = X509_get_subject_name(x509), let line = X509_NAME_oneline(name, nil, 0) {
            parts.append("subject=" + String(cString: line))
            sy_OPENSSL_free(line)
        }
        if let serial = X509_get_serialNumber(x509), let bn = ASN1_INTEGER_to_BN(serial, nil) {
            if let hex = BN_bn2hex(bn) {
                parts.append("serial=" + String(cString: hex))
                sy_OPENSSL_free(hex)
            }
            BN_free(bn)
        }
        if let notAfter = X509_get0_notAfter(x509) {
            if X509_cmp_current_time(notAfter) < 0 { parts.append("EXPIRED") }
            if let bio = BIO_new(BIO_s_mem()) {
                if ASN1_TIME_print(bio, notAfter) == 1 {
                    var buffer = [CChar](repeating: 0, count: 64)
                    let n = BIO_read(bio, &buffer, Int32(buffer.count - 1))
                    if n > 0 { parts.append("notAfter=" + String(cString: buffer)) }
                }
                BIO_free(bio)
            }
        }
        return parts.joined(separator: " ")
    }
}
