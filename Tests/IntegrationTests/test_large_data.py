"""Big payloads: 10 MB COPY in both directions, and a 100 MB bytea round trip during which the
proxy's resident memory stays flat (it streams messages instead of buffering them)."""

import hashlib
import os
import threading
import time



def test_copy_10mb_round_trip(proxy):
    line_tail = os.urandom(48).hex()  # 96 hex chars; valid COPY text, no escapes needed
    data = b"".join(f"{i}\t{line_tail}{i:08d}\n".encode() for i in range(95_000))
    assert len(data) >= 10_000_000
    with proxy.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS copy_big")
        conn.execute("CREATE TABLE copy_big(id int, payload text)")
        with conn.cursor() as cur:
            with cur.copy("COPY copy_big FROM STDIN") as copy:
                for off in range(0, len(data), 1 << 20):
                    copy.write(data[off : off + (1 << 20)])
            assert cur.rowcount == 95_000
            out = bytearray()
            with cur.copy("COPY (SELECT id, payload FROM copy_big ORDER BY id) TO STDOUT") as copy:
                for chunk in copy:
                    out += chunk
        assert bytes(out) == data
        conn.execute("DROP TABLE copy_big")


class RssSampler(threading.Thread):
    def __init__(self, proxy, interval=0.02):
        super().__init__(daemon=True)
        self.proxy = proxy
        self.interval = interval
        self.max_kb = 0
        self.samples = 0
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                self.max_kb = max(self.max_kb, self.proxy.rss_kb())
                self.samples += 1
            except (OSError, AssertionError):
                return
            time.sleep(self.interval)


def test_100mb_bytea_round_trip_memory_flat(proxy):
    blob = os.urandom(100 * 1024 * 1024)
    digest = hashlib.sha256(blob).hexdigest()
    sampler = RssSampler(proxy)
    with proxy.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS big_bytea")
        conn.execute("CREATE TABLE big_bytea(id int, data bytea)")
        conn.execute("ALTER TABLE big_bytea ALTER COLUMN data SET STORAGE EXTERNAL")  # no compression
        measure = proxy.process is not None  # SWITCHYARD_TEST_DIRECT=1 has no proxy process
        baseline_kb = proxy.rss_kb() if measure else 0
        if measure:
            sampler.start()
        try:
            conn.execute("INSERT INTO big_bytea VALUES (1, %b)", (blob,))
            assert conn.execute("SELECT length(data) FROM big_bytea WHERE id = 1").fetchone()[0] == len(blob)
            back = conn.execute("SELECT data FROM big_bytea WHERE id = 1", binary=True).fetchone()[0]
            # Text format too: the hex encoding doubles it to 200 MB on the wire.
            back_text = conn.execute("SELECT data FROM big_bytea WHERE id = 1").fetchone()[0]
        finally:
            sampler.stop_flag.set()
            if measure:
                sampler.join()
        assert hashlib.sha256(back).hexdigest() == digest
        assert hashlib.sha256(back_text).hexdigest() == digest
        conn.execute("DROP TABLE big_bytea")
    if not measure:
        return
    assert sampler.samples > 10
    max_mb = sampler.max_kb / 1024
    print(f"proxy RSS: baseline {baseline_kb / 1024:.1f} MB, peak {max_mb:.1f} MB over {sampler.samples} samples")
    assert max_mb < 64, f"proxy RSS peaked at {max_mb:.1f} MB (baseline {baseline_kb / 1024:.1f} MB)"
