/*
 * Out-of-line wrappers for DPDK's static inline functions, which bindgen cannot bind.
 * Each wrapper is one call; the Rust side gets them as ordinary extern "C" symbols.
 */
#ifndef RVS_DPDK_SHIM_H
#define RVS_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

uint16_t rvs_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t n);
uint16_t rvs_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
void rvs_pktmbuf_free(struct rte_mbuf *m);
void rvs_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);

uint8_t *rvs_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t rvs_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t rvs_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint8_t *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
uint8_t *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
uint8_t *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint32_t rvs_pktmbuf_rss_hash(const struct rte_mbuf *m);
/* DPDK's RX checksum flag bits, for the Rust side's constants to be checked against:
 * 0 IP good, 1 IP bad, 2 L4 good, 3 L4 bad. */
uint64_t rvs_rx_csum_flag(int which);
/* The rx offloads rvs asks for (IPv4, UDP and TCP checksums) among `capa`. */
uint64_t rvs_rx_csum_offloads(uint64_t capa);
uint16_t rvs_pktmbuf_port(const struct rte_mbuf *m);
void rvs_pktmbuf_set_port(struct rte_mbuf *m, uint16_t port);

unsigned int rvs_lcore_id(void);
int rvs_errno(void);
uint64_t rvs_rdtsc(void);
/* Objects held in the calling lcore's cache of mp (0 without a cache or an lcore id). */
uint32_t rvs_mempool_cache_len(struct rte_mempool *mp, unsigned int lcore_id);

#endif
