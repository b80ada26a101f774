import { Metadata, status, type Server, type ServiceDefinition, type ServiceError, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';

/**
 * The standard gRPC health service (grpc.health.v1.Health/Check), which Kubernetes' `grpc`
 * probes and other load balancers call. It answers without the agent's token on purpose: the
 * kubelet cannot send one, and the answer reveals nothing but "serving". The agent's own
 * Sandboxes.Health RPC (token-checked, with load figures) stays what the control plane uses.
 *
 * The two messages are one field each, so they are encoded by hand here rather than adding a
 * proto file and code generation for them:
 *   message HealthCheckRequest { string service = 1; }
 *   message HealthCheckResponse { enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; } ServingStatus status = 1; }
 */
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

/** Service names this executor reports on: "" (the whole server) and each agent service. */
const AGENT_SERVICES = ['Sandboxes', 'Invoke', 'Processes', 'Files', 'Pty', 'Nfs', 'Usage'].map((name) => `kiln.executor.v1.${name}`);
const KNOWN_SERVICES = new Set(['', ...AGENT_SERVICES]);

const SERVING = 1;

interface CheckRequest {
  service: string;
}
interface CheckResponse {
  status: number;
}

/** Reads a protobuf varint at `pos`; returns the value and the next position. */
function readVarint(buf: Buffer, pos: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint in HealthCheckRequest');
    const byte = buf[pos++] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [value, pos];
    shift += 7;
    if (shift > 49) throw new Error('varint too long in HealthCheckRequest');
  }
}

/** Decodes HealthCheckRequest, skipping unknown fields as protobuf requires. */
export function decodeCheckRequest(buf: Buffer): CheckRequest {
  let service = '';
  let pos = 0;
  while (pos < buf.length) {
    let key: number;
    [key, pos] = readVarint(buf, pos);
    const wireType = key & 7;
    if (wireType === 0) {
      [, pos] = readVarint(buf, pos);
    } else if (wireType === 2) {
      let len: number;
      [len, pos] = readVarint(buf, pos);
      if (pos + len > buf.length) throw new Error('truncated field in HealthCheckRequest');
      if (key >>> 3 === 1) service = buf.subarray(pos, pos + len).toString('utf8');
      pos += len;
    } else if (wireType === 1 || wireType === 5) {
      pos += wireType === 1 ? 8 : 4;
    } else {
      throw new Error(`unsupported wire type ${wireType} in HealthCheckRequest`);
    }
  }
  return { service };
}

/** Encodes HealthCheckResponse: field 1 (varint) = status. */
export function encodeCheckResponse(res: CheckResponse): Buffer {
  return Buffer.from([0x08, res.status]);
}

/** The service definition, usable by servers and (with makeGenericClientConstructor) clients. */
export const healthServiceDefinition: ServiceDefinition = {
  check: {
    path: `/${HEALTH_SERVICE_NAME}/Check`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (req: CheckRequest) => {
      const name = Buffer.from(req.service, 'utf8');
      if (name.length === 0) return Buffer.alloc(0);
      const len: number[] = [];
      for (let n = name.length; ; n >>>= 7) {
        if (n < 0x80) {
          len.push(n);
          break;
        }
        len.push((n & 0x7f) | 0x80);
      }
      return Buffer.concat([Buffer.from([0x0a, ...len]), name]);
    },
    requestDeserialize: decodeCheckRequest,
    responseSerialize: encodeCheckResponse,
    responseDeserialize: (buf: Buffer): CheckResponse => ({ status: buf.length >= 2 && buf[0] === 0x08 ? (buf[1] as number) : 0 }),
  },
};

/**
 * Registers grpc.health.v1.Health on `server`. The agent serves as soon as it listens, so the
 * status is SERVING for the known names; an unknown name is NOT_FOUND, as the protocol says.
 */
export function addHealthService(server: Server): void {
  server.addService(healthServiceDefinition, {
    check: (call: ServerUnaryCall<CheckRequest, CheckResponse>, callback: sendUnaryData<CheckResponse>) => {
      if (KNOWN_SERVICES.has(call.request.service)) return callback(null, { status: SERVING });
      const err: ServiceError = Object.assign(new Error(`unknown service "${call.request.service}"`), {
        code: status.NOT_FOUND,
        details: `unknown service "${call.request.service}"; known: "" and ${AGENT_SERVICES.join(', ')}`,
        metadata: new Metadata(),
      });
      callback(err);
    },
  });
}
