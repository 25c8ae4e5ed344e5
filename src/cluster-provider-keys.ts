import { z } from "zod";
import { maskUrlCredentials } from "./url-credentials.ts";

/**
 * The `kubernetes` and `etcd` sections of a config file. Both are read at start, so a
 * change to them applies on restart. This module imports only zod, so the config schema
 * can include it without an import cycle.
 */

/** The `kubernetes` section: where the API server is and how to reach it. */
export interface KubernetesSettings {
  /** Path of a kubeconfig file; exclusive with `inCluster`. */
  kubeconfig?: string;
  /** Use the pod's service account and the `KUBERNETES_SERVICE_*` variables. */
  inCluster: boolean;
  /** Kubeconfig context; the file's current-context when absent. */
  context?: string;
  /**
   * Send API requests to tinylb's own first listener, once the seed backends are in the
   * running set, so that tinylb reaches the API servers it balances.
   * @default true
   */
  viaListener: boolean;
  /** Name to verify in the API server certificate, in place of the kubeconfig's. */
  tlsServerName?: string;
}

/** The `etcd` section: the members and the key prefix to follow. */
export interface EtcdSettings {
  endpoints: string[];
  prefix: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

const etcdEndpoint = z
  .string()
  .refine((text) => /^https?:\/\/[^/\s]+\/?$/.test(text), {
    message: "expected an http:// or https:// URL with a host and port, such as http://10.0.0.11:2379",
  })
  // A password in the URL would reach logs and status, and etcd would not take it: it wants a token.
  // The error quotes the URL with the user name and password masked.
  .superRefine((text, context) => {
    const masked = maskUrlCredentials(text);
    if (masked !== text) {
      context.addIssue({
        code: "custom",
        message: "a user name or password in the URL is not supported, because tinylb has no etcd user authentication; remove it and authenticate with client certificates (certFile and keyFile)",
        input: masked,
      });
    }
  });

/** Config file keys of the cluster providers, merged into the config file schema. */
export const clusterProviderFileKeys = {
  kubernetes: z
    .strictObject({
      kubeconfig: z.string().min(1).optional(),
      inCluster: z.boolean().optional(),
      context: z.string().min(1).optional(),
      viaListener: z.boolean().optional(),
      tlsServerName: z.string().min(1).optional(),
    })
    .refine((section) => (section.kubeconfig !== undefined) !== (section.inCluster === true), {
      message: "set exactly one of kubeconfig or inCluster: true",
    })
    .transform((section): KubernetesSettings => ({ ...section, inCluster: section.inCluster === true, viaListener: section.viaListener ?? true }))
    .optional(),
  etcd: z
    .strictObject({
      endpoints: z.array(etcdEndpoint).min(1).max(100),
      prefix: z.string().min(1),
      caFile: z.string().min(1).optional(),
      certFile: z.string().min(1).optional(),
      keyFile: z.string().min(1).optional(),
    })
    .refine((section) => (section.certFile === undefined) === (section.keyFile === undefined), {
      message: "set certFile and keyFile together",
    })
    .optional(),
};

