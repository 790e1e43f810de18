# A minimal image with a shell, for the Docker conformance tests (no image can be pulled here).
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["sleep", "3600"]
