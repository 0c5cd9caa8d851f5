# Switchyard container image: build with the Swift toolchain, run on debian:bookworm-slim.
#   docker build -t switchyard .
#   docker run -p 6432:6432 -v $PWD/deploy:/etc/switchyard:ro switchyard
# The mounted folder holds proxy.conf (with listen_addr = 0.0.0.0) and its auth_file; 9930 is metrics_listen.

# ---- build stage -------------------------------------------------------------------------
FROM swift:6.2-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libevent-dev libssl-dev libpq-dev libpg-query-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies in their own layer so source edits don't refetch them.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release \
 && install -D "$(swift build -c release --show-bin-path)/switchyard" /out/usr/local/bin/switchyard

# ---- runtime stage -----------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libevent-2.1-7 libevent-openssl-2.1-7 libssl3 libpq5 libpg-query1504.0 libstdc++6 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The Swift runtime (swiftCore, Foundation, Dispatch, ...). The binary's RUNPATH names this folder;
# ldconfig makes it findable as well.
COPY --from=build /usr/lib/swift/linux/*.so /usr/lib/swift/linux/
RUN echo /usr/lib/swift/linux > /etc/ld.so.conf.d/swift.conf && ldconfig
COPY --from=build /out/usr/local/bin/switchyard /usr/local/bin/switchyard
COPY proxy.conf /etc/switchyard/proxy.conf.example
COPY userlist.txt /etc/switchyard/userlist.txt.example
RUN useradd --system --no-create-home --shell /usr/sbin/nologin switchyard \
 && switchyard --version
USER switchyard
EXPOSE 6432 9930
CMD ["switchyard", "--config", "/etc/switchyard/proxy.conf"]
