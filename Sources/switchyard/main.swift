// switchyard: the command line. Reads proxy.conf, validates it (--check), sets up logging and runs the proxy.
import ArgumentParser
import Foundation
import Logging
import ProxyCore
import ProxyIO



struct Switchyard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "A PostgreSQL read/write-splitting proxy.",
        version: switchyardVersion)

    @Option(name: .long, help: "Path to proxy.conf.")
    var config: String = "./proxy.conf"

    @Flag(name: .long, help: "Validate the config, print errors with line numbers, and exit.")
    var check = false

    @Flag(name: .long, help: "Print the config reference (Markdown) and exit.")
    var printConfigReference = false

    @OptionGroup(title: "Microbenchmarks")
    var microbench: MicrobenchOptions

    func run() throws {
        if try microbench.runIfRequested() { return }
        if printConfigReference {
            print(ConfigKeys.markdownReference())
            return
        }
        let cfg: Config
        do {
            cfg = try ConfigParser.load(path: config)
        } catch let errors as ConfigErrors {
            FileHandle.standardError.write(Data((errors.description + "\n").utf8))
            throw ExitCode(2)
        }
        if check {
            // The auth file is part of the config: check it too.
            if let path = cfg.proxy.authFile {
                do {
                    _ = try AuthFile.parse(try String(contentsOfFile: path, encoding: .utf8))
                } catch {
                    FileHandle.standardError.write(Data("\(path): \(error)\n".utf8))
                    throw ExitCode(2)
                }
            }
            // So are the TLS certificate, key and CA files.
            do {
                try Proxy.checkTLSFiles(cfg)
            } catch {
                FileHandle.standardError.write(Data("\(config): \(error)\n".utf8))
                throw ExitCode(2)
            }
            print("\(config): OK")
            return
        }
        let level = Logger.Level(rawValue: cfg.proxy.logLevel.rawValue) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "switchyard")
        signal(SIGPIPE, SIG_IGN)
        // One Proxy per worker thread (workers = 0: one per core); worker 0 runs on this thread.
        let workers = Workers(count: Workers.resolvedCount(cfg.proxy.workers))
        var proxies: [Proxy] = []
        do {
            for index in 0..<workers.count {
                proxies.append(try Proxy(config: cfg, logger: logger, workers: workers, index: index))
            }
            for proxy in proxies { try proxy.start() }
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        if let pidFile = cfg.proxy.pidFile {
            try? "\(getpid())\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
        }
        let stopped = DispatchGroup()
        for proxy in proxies.dropFirst() {
            stopped.enter()
            let thread = Thread {
                proxy.run()
                stopped.leave()
            }
            thread.name = "switchyard-worker-\(proxy.index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
        proxies[0].run()
        stopped.wait()
        logger.info("stopped")
    }
}

Switchyard.main()
